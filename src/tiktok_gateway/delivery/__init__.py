"""Delivery: leased items -> batches -> TikTok -> ack, retry, isolate, dead-letter or pause."""
