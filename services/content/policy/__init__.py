"""Publishing policy per community: quiet hours, the promotion cap, the minimum gap; best times."""
