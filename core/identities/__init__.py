"""Talking identities: the enrolled-identity store beside the checkpoints (store), enrolling a
new identity into every model (enrolment), the identity adapter's contrast heads (adapter)."""
