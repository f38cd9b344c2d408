"""The kit every Qunyun service uses: settings, database, auth, errors, events."""
