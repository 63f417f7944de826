complete -c p2p-wc -l files-from -d 'Read the paths from FILE, one per line (\'-\' reads standard input)' -r -F
complete -c p2p-wc -l format -d 'Output format' -r -f -a "json\t'One JSON object per line'
text\t'Columns for people, like the classic tool'"
complete -c p2p-wc -l socket -d 'The local p2pd socket [default: the only running daemon, or the one on port 65432]' -r -F
complete -c p2p-wc -s 0 -l null -d 'With --files-from, paths are separated by NUL bytes instead of newlines'
complete -c p2p-wc -s l -l lines -d 'Print the line count'
complete -c p2p-wc -s w -l words -d 'Print the word count'
complete -c p2p-wc -s c -l bytes -d 'Print the byte count'
complete -c p2p-wc -s m -l chars -d 'Print the character count'
complete -c p2p-wc -s h -l help -d 'Print help (see more with \'--help\')'
complete -c p2p-wc -s V -l version -d 'Print version'
