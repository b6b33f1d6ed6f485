"""Durable queues of TikTok events between the HTTP answer and delivery (see ``base.py``)."""
