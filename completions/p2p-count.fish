complete -c p2p-count -l files-from -d 'Read the paths from FILE, one per line (\'-\' reads standard input; blank lines are skipped)' -r -F
complete -c p2p-count -l files0-from -d 'Read the paths from F, separated by NUL bytes (\'-\' reads standard input), as GNU wc does' -r -F
complete -c p2p-count -l format -d 'Output format' -r -f -a "json\t'One JSON object per line'
text\t'Columns for people, like the classic tool'"
complete -c p2p-count -l peer -d 'Run on this member instead, by name or HOST:PORT; paths are as they are there (repeatable)' -r
complete -c p2p-count -l where -d 'With --all or --spread, only members with this tag, KEY=VALUE (repeatable; all must match)' -r
complete -c p2p-count -l timeout -d 'Seconds a member may stay silent before its paths are given up (--spread: redone elsewhere)' -r
complete -c p2p-count -l resume -d 'Skip the paths that have a good line in FILE, the JSON output of an earlier run of this command (failed lines are redone; FILE may be the file this run appends to)' -r -F
complete -c p2p-count -l socket -d 'The local p2pd socket [default: the only running daemon, or the one on port 65432]' -r -F
complete -c p2p-count -s 0 -l null -d 'With --files-from, paths are separated by NUL bytes instead of newlines (as --files0-from)'
complete -c p2p-count -s r -l recursive -d 'Count the whole tree below each directory (symlinks are never followed)'
complete -c p2p-count -l all -d 'Run on every member that has not left, this one included: one line per member per path (a down member\'s is an unreachable error)'
complete -c p2p-count -l spread -d 'Compute each path once, on whichever alive member is free (for shared filesystems)'
complete -c p2p-count -l group -d 'Fold identical answers: one line per distinct answer for a path, with its members (printed when the query ends)'
complete -c p2p-count -l progress -d 'Show the progress line on stderr even when stderr is not a terminal (then one whole line a second at most)'
complete -c p2p-count -l no-progress -d 'Never show the progress line (shown for --all and --spread when stderr is a terminal)'
complete -c p2p-count -s h -l help -d 'Print help (see more with \'--help\')'
complete -c p2p-count -s V -l version -d 'Print version'
