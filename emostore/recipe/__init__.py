"""The one-command recipe: manifest → partition → labels → extraction → sweep → report (docs/recipe.md).

Import the pipeline lazily (it pulls in the training stack)::

    from emostore.recipe.pipeline import RecipeOptions, run_recipe
"""
