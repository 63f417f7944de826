complete -c p2p-revoke -l format -d 'Output format' -r -f -a "json\t'One JSON object per line'
text\t'Columns for people, like the classic tool'"
complete -c p2p-revoke -l socket -d 'The local p2pd socket [default: the only running daemon, or the one on port 65432]' -r -F
complete -c p2p-revoke -s h -l help -d 'Print help (see more with \'--help\')'
complete -c p2p-revoke -s V -l version -d 'Print version'
