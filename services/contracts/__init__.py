"""The billing interface, split per domain. `services.billing.Billing` composes them."""
