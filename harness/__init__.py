"""Phase 5.4 ops rehearsal harness: dataset tooling, BC + PPO trainer, checkpoint promotion."""

__version__ = "0.1.0"
