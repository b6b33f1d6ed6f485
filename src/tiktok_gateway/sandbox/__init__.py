"""Local stand-ins for the services the gateway delivers to (SPEC 9 and 12).

One app (``app``) serves every side: TikTok's ``POST /open_api/v1.3/event/track/``
(``validation`` holds TikTok's checks, ``store`` what was accepted) and Google's
``/g/collect`` and ``/mp/collect`` (``google``: what was received). Each side misbehaves on
demand (``faults``). ``server`` runs the app with uvicorn for ``tiktok-gateway sandbox``; inside
``serve`` it is mounted at ``/sandbox`` and answers destinations without a real target.
"""
