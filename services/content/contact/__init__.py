"""The contact budget: permits for every direct touch of a member, counted across partners."""
