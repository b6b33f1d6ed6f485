from tiktok_gateway.cli import main

# Guarded: serve's worker processes (multiprocessing's spawn) import this module as __mp_main__.
if __name__ == "__main__":
    main()
