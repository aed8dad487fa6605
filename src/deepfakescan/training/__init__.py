"""Training code (torch-only, extra ``[train]``): data synthesis, datasets, nets, export."""
