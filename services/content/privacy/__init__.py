"""Export and erasure of a member's content data."""
