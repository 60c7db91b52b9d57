"""Command groups kept out of ``emostore/cli.py``; each module's ``register(group)`` attaches them."""
