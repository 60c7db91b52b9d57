"""EmoBox's cross-corpus track (its Table 5): train on corpus A, test on corpus B's balanced test set
over the classes they share.

:mod:`classes` maps each corpus's classes to the shared ones, :mod:`balanced` holds the balanced
test sets (EmoBox's published ones, or emostore's built the same way), :mod:`pair` turns a
(train, test) pair of stores into ordinary run inputs (store, label set, partition) so the sweep
machinery runs it as a grid point, and :mod:`matrix` draws the train x test table.
"""
