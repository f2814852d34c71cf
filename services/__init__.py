"""Business logic: the billing interface, its implementations, alerts, rates and delivery."""
