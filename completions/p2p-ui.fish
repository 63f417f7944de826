complete -c p2p-ui -l listen -d 'Where to serve, ADDR:PORT (port 0 takes a free one); an address other than loopback is warned about' -r
complete -c p2p-ui -l host -d 'Another name the dashboard is reached by (as the browser\'s Host, without the port), besides 127.0.0.1, localhost, [::1] and the --listen address; repeatable' -r
complete -c p2p-ui -l socket -d 'The local p2pd socket [default: the only running daemon, or the one on port 65432]' -r -F
complete -c p2p-ui -l open -d 'Open the dashboard in the desktop\'s browser (xdg-open), best effort'
complete -c p2p-ui -s h -l help -d 'Print help'
complete -c p2p-ui -s V -l version -d 'Print version'
