"""The one-command recipe: manifest → partition → labels → extraction → sweep → report."""
