complete -c p2p-keygen -s h -l help -d 'Print help'
complete -c p2p-keygen -s V -l version -d 'Print version'
