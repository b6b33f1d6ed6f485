"""tiktok-gateway: GA4 hits and server events in, TikTok Events API 2.0 events out."""

__version__ = "0.1.0"
