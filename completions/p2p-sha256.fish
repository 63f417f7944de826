complete -c p2p-sha256 -l files-from -d 'Read the paths from FILE, one per line (\'-\' reads standard input; blank lines are skipped)' -r -F
complete -c p2p-sha256 -l files0-from -d 'Read the paths from F, separated by NUL bytes (\'-\' reads standard input), as GNU wc does' -r -F
complete -c p2p-sha256 -l format -d 'Output format [default: json; sha256sum with --tag, -z, -b or -t]' -r -f -a "json\t'One JSON object per line'
text\t'Columns for people'
sha256sum\t'Lines that `sha256sum -c` accepts'"
complete -c p2p-sha256 -l peer -d 'Run on this member instead, by name or HOST:PORT; paths are as they are there (repeatable)' -r
complete -c p2p-sha256 -l where -d 'With --all or --spread, only members with this tag, KEY=VALUE (repeatable; all must match)' -r
complete -c p2p-sha256 -l timeout -d 'Seconds a member may stay silent before its paths are given up (--spread: redone elsewhere)' -r
complete -c p2p-sha256 -l resume -d 'Skip the paths that have a good line in FILE, the JSON output of an earlier run of this command (failed lines are redone; FILE may be the file this run appends to)' -r -F
complete -c p2p-sha256 -l socket -d 'The local p2pd socket [default: the only running daemon, or the one on port 65432]' -r -F
complete -c p2p-sha256 -s 0 -l null -d 'With --files-from, paths are separated by NUL bytes instead of newlines (as --files0-from)'
complete -c p2p-sha256 -s c -l check -d 'Read digests and names from the FILEs (sha256sum\'s format, BSD tags too; \'-\' or none: standard input) and verify them'
complete -c p2p-sha256 -s b -l binary -d 'Mark lines with \'*\', binary mode (with --format sha256sum; on Linux the digest is the same)'
complete -c p2p-sha256 -s t -l text -d 'Mark lines with \' \', text mode (the default; with --format sha256sum)'
complete -c p2p-sha256 -l tag -d 'Write BSD-style lines, SHA256 (NAME) = DIGEST (with --format sha256sum, which it selects)'
complete -c p2p-sha256 -s z -l zero -d 'End each line with NUL, not newline, and escape no name (with --format sha256sum, which it selects)'
complete -c p2p-sha256 -l ignore-missing -d 'With --check: a listed file that does not exist is no failure and prints nothing'
complete -c p2p-sha256 -l quiet -d 'With --check: print nothing for files that match'
complete -c p2p-sha256 -l status -d 'With --check: print nothing; the exit status tells'
complete -c p2p-sha256 -l strict -d 'With --check: improperly formatted lines make the exit status 1'
complete -c p2p-sha256 -s w -l warn -d 'With --check: name each improperly formatted line on stderr'
complete -c p2p-sha256 -l all -d 'Run on every member that has not left, this one included: one line per member per path (a down member\'s is an unreachable error)'
complete -c p2p-sha256 -l spread -d 'Compute each path once, on whichever alive member is free (for shared filesystems)'
complete -c p2p-sha256 -l group -d 'Fold identical answers: one line per distinct answer for a path, with its members (printed when the query ends)'
complete -c p2p-sha256 -l progress -d 'Show the progress line on stderr even when stderr is not a terminal (then one whole line a second at most)'
complete -c p2p-sha256 -l no-progress -d 'Never show the progress line (shown for --all and --spread when stderr is a terminal)'
complete -c p2p-sha256 -s h -l help -d 'Print help (see more with \'--help\')'
complete -c p2p-sha256 -s V -l version -d 'Print version'
