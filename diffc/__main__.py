from diffc.cli import main

main()
