complete -c p2pd -l join -d 'Join through HOST:PORT at start, retrying with back-off until one answers (repeatable)' -r
complete -c p2pd -l bind -d 'Address to listen on for peers, TCP and UDP on PORT' -r
complete -c p2pd -l advertise -d 'Address the other members use to reach this one [default: BIND:PORT]' -r
complete -c p2pd -l tag -d 'A tag every member sees, KEY=VALUE (repeatable; at most 16, 160 bytes in all)' -r
complete -c p2pd -l secret-file -d 'Cluster key file: base64 keys, one per line, the first sends [default: $P2PD_SECRET, else ~/.config/p2p/cluster.key, created if missing]' -r -F
complete -c p2pd -l ca -d 'The cluster CA\'s public key (p2p-ca init): with it, only members with a certificate of this CA are accepted [default: the systemd credential ca.pub]' -r -F
complete -c p2pd -l cert -d 'This node\'s certificate from the CA (p2p-ca sign), with --ca [default: the systemd credential node.crt]' -r -F
complete -c p2pd -l node-key -d 'This node\'s secret key (p2p-keygen --node), with --ca; refused if others may read it [default: the systemd credential node.key]' -r -F
complete -c p2pd -l discover-port -d 'UDP port of LAN discovery\'s beacons, the same on every member' -r
complete -c p2pd -l log-level -d 'Log filter: error, warn, info, debug, trace, or per module (p2p=debug,warn)' -r
complete -c p2pd -l export -d 'Let peers read files below DIR (repeatable); with :groups=G1,G2, only members whose certificate carries one of the groups (needs --ca); nothing is exported by default' -r -F
complete -c p2pd -l gossip-interval -d 'Milliseconds between gossip rounds' -r
complete -c p2pd -l probe-interval -d 'Milliseconds between failure-detection probes' -r
complete -c p2pd -l suspicion-timeout -d 'Milliseconds a suspected member has to refute before it is declared down (longer while this daemon runs late: see CLUSTER)' -r
complete -c p2pd -l socket -d 'Path of the local socket [default: $XDG_RUNTIME_DIR/p2p/p2pd-PORT.sock; without XDG_RUNTIME_DIR, /run/p2p/ for root, /tmp/p2p-UID/ for others]' -r -F
complete -c p2pd -l name -d 'Name of this node in results: 1 to 64 ASCII letters, digits, . _ - : @ [default: HOSTNAME:PORT]' -r
complete -c p2pd -l workers -d 'Worker threads for file queries [default: number of CPUs]' -r
complete -c p2pd -l cache-entries -d 'How many file versions the result cache remembers (0 turns it off)' -r
complete -c p2pd -l config -d 'Read settings from this TOML file, whose keys are the long flags [default: ~/.config/p2p/p2pd.toml, else /etc/p2pd/p2pd.toml, when present]' -r -F
complete -c p2pd -l state-dir -d 'Keep this node\'s identity and last known members here, to rejoin them after a restart' -r -F
complete -c p2pd -l connections-per-user -d 'Local connections one user may hold at once (p2pd\'s own user and root are not limited)' -r
complete -c p2pd -l idle-timeout -d 'Seconds a local client may send nothing while none of its paths is being worked on' -r
complete -c p2pd -l port-file -d 'Once serving, write the peer port bound (a number and a newline) to FILE, atomically; removed at exit' -r -F
complete -c p2pd -l max-links -d 'Member links cluster queries may hold open at once, over all queries (fewer if the descriptor limit allows fewer)' -r
complete -c p2pd -l split-above -d 'p2p-wc --spread counts a file larger than BYTES as byte ranges spread over the members, in ranges of at most BYTES (and at most 64 MiB); 0 never splits' -r
complete -c p2pd -l accept-uncertified -d 'While the cluster moves to certificates: with --ca, still accept members that hold the cluster key but no certificate (as shared-key mode does), and gossip with them; drop it once every member has a certificate'
complete -c p2pd -l discover -d 'Find and join the members on this link: send a beacon sealed with the cluster key to a link-local multicast group every few seconds, and join the members heard (off by default: every holder of the key on the link reads who the members are)'
complete -c p2pd -l no-discover -d 'No LAN discovery (the default; overrides a --discover or `discover = true` before it)'
complete -c p2pd -s h -l help -d 'Print help'
complete -c p2pd -s V -l version -d 'Print version'
