from bigseg.cli import main

main()
