from stockpred.cli import main

main()
