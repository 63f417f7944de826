complete -c p2p-get -l peer -d 'With --any, the members that may send chunks, by name or HOST:PORT (repeatable) [default: every alive member but this one]' -r
complete -c p2p-get -l where -d 'With --all or --any, only members with this tag, KEY=VALUE (repeatable; all must match)' -r
complete -c p2p-get -l timeout -d 'Seconds a member may stay silent before its file is given up' -r
complete -c p2p-get -l format -d 'Output format: one JSON line per file, or text (sha256sum lines of what was written)' -r -f -a "json\t'One JSON object per line'
text\t'Columns for people, like the classic tool'"
complete -c p2p-get -l socket -d 'The local p2pd socket [default: the only running daemon, or the one on port 65432]' -r -F
complete -c p2p-get -s r -l recursive -d 'Fetch the tree below a directory: its regular files and directories (symlinks and special files are skipped, with a message)'
complete -c p2p-get -l all -d 'Fetch PATH from every member that has not left, into DEST/MEMBER/PATH (a down member\'s is an unreachable error)'
complete -c p2p-get -l any -d 'Fetch the file at PATH that several members hold with the same content, in chunks from several of them at once, each chunk checked (members with other content are not used)'
complete -c p2p-get -s f -l force -d 'Replace a destination that exists'
complete -c p2p-get -s c -l continue -d 'Pick up DEST.p2p-partial, what an interrupted or failed --continue left: the part it holds is hashed again and only the rest is sent; kept when a transfer fails'
complete -c p2p-get -l progress -d 'Show the progress line on stderr even when stderr is not a terminal (then one whole line a second at most)'
complete -c p2p-get -l no-progress -d 'Never show the progress line (shown when stderr is a terminal)'
complete -c p2p-get -s h -l help -d 'Print help (see more with \'--help\')'
complete -c p2p-get -s V -l version -d 'Print version'
