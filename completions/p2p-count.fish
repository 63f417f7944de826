complete -c p2p-count -l files-from -d 'Read the paths from FILE, one per line (\'-\' reads standard input)' -r -F
complete -c p2p-count -l format -d 'Output format' -r -f -a "json\t'One JSON object per line'
text\t'Columns for people, like the classic tool'"
complete -c p2p-count -l socket -d 'The local p2pd socket [default: the only running daemon, or the one on port 65432]' -r -F
complete -c p2p-count -s 0 -l null -d 'With --files-from, paths are separated by NUL bytes instead of newlines'
complete -c p2p-count -s r -l recursive -d 'Count the whole tree below each directory (symlinks are never followed)'
complete -c p2p-count -s h -l help -d 'Print help (see more with \'--help\')'
complete -c p2p-count -s V -l version -d 'Print version'
