from rnn_cli.entry import main

main()
