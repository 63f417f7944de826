complete -c p2p-status -l format -d 'Output format' -r -f -a "json\t'One JSON object'
prometheus\t'The Prometheus text exposition format, for node_exporter\'s textfile collector'"
complete -c p2p-status -l socket -d 'The local p2pd socket [default: the only running daemon, or the one on port 65432]' -r -F
complete -c p2p-status -s h -l help -d 'Print help (see more with \'--help\')'
complete -c p2p-status -s V -l version -d 'Print version'
