"""The Panel UI: one ``Section`` per tab, assembled by ``FraudApp``."""
