"""GA4 as a destination: forwarding the hits the gateway receives to Google Analytics (SPEC 12)."""
