complete -c p2p-peers -l state -d 'Only members in this state (repeatable)' -r -f -a "alive\t''
suspect\t''
down\t''
left\t''
revoked\t''"
complete -c p2p-peers -l where -d 'Only members with this tag, KEY=VALUE (repeatable; all must match)' -r
complete -c p2p-peers -l format -d 'Output format' -r -f -a "json\t'One JSON object per line'
text\t'Columns for people, like the classic tool'"
complete -c p2p-peers -l socket -d 'The local p2pd socket [default: the only running daemon, or the one on port 65432]' -r -F
complete -c p2p-peers -l watch -d 'Keep running and print one line per membership change'
complete -c p2p-peers -s h -l help -d 'Print help (see more with \'--help\')'
complete -c p2p-peers -s V -l version -d 'Print version'
