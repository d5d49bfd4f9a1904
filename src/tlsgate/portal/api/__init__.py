"""The portal's JSON API, ``/api/v1``: its own response models, never the store's tables."""
