from drift_local.cli.app import main

main()
