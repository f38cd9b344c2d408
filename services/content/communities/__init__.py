"""What content knows about communities and their members, learned from members' events."""
