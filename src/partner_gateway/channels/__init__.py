"""Channel providers: one folder per provider, each implementing the contract in base.py."""
