complete -c p2p-keygen -s o -l output -d 'Write the key to FILE instead of standard output, creating it with mode 0600 (refused if FILE exists)' -r -F
complete -c p2p-keygen -l force -d 'With --output, replace FILE if it exists (atomically, by a new 0600 file renamed over it)'
complete -c p2p-keygen -l node -d 'Make a node key pair instead: the secret half to FILE (0600), the public half beside it with the extension .pub'
complete -c p2p-keygen -s h -l help -d 'Print help'
complete -c p2p-keygen -s V -l version -d 'Print version'
