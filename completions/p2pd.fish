complete -c p2pd -l socket -d 'Path of the local socket [default: $XDG_RUNTIME_DIR/p2p/p2pd-PORT.sock, /run/p2p for root]' -r -F
complete -c p2pd -l name -d 'Name of this node in results [default: HOSTNAME:PORT]' -r
complete -c p2pd -l workers -d 'Worker threads for file queries [default: number of CPUs]' -r
complete -c p2pd -l cache-entries -d 'How many file versions the result cache remembers (0 turns it off)' -r
complete -c p2pd -s h -l help -d 'Print help'
complete -c p2pd -s V -l version -d 'Print version'
