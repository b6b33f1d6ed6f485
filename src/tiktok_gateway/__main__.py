from tiktok_gateway.cli import main

main()
