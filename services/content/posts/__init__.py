"""Posts: the review workflow, the calendar and the publisher."""
