"""Audio loading, encoder backends and the extraction runner."""
