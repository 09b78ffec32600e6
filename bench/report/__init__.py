"""Reports, rebuilt from the ledger alone: aggregate.py (pure pandas) and the writers."""
