# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_p2p_ca_global_optspecs
    string join \n h/help V/version
end

function __fish_p2p_ca_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_p2p_ca_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_p2p_ca_using_subcommand
    set -l cmd (__fish_p2p_ca_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c p2p-ca -n "__fish_p2p_ca_needs_command" -s h -l help -d 'Print help'
complete -c p2p-ca -n "__fish_p2p_ca_needs_command" -s V -l version -d 'Print version'
complete -c p2p-ca -n "__fish_p2p_ca_needs_command" -f -a "init" -d 'Make a new CA key pair in DIR: ca.key (mode 0600) and ca.pub (for every member\'s --ca)'
complete -c p2p-ca -n "__fish_p2p_ca_needs_command" -f -a "sign" -d 'Sign a certificate for the node public key in NODE.pub and print it'
complete -c p2p-ca -n "__fish_p2p_ca_needs_command" -f -a "revoke" -d 'Print a signed revocation list of the SERIALs (hex, as sign prints them), for p2p-revoke'
complete -c p2p-ca -n "__fish_p2p_ca_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c p2p-ca -n "__fish_p2p_ca_using_subcommand init" -s h -l help -d 'Print help'
complete -c p2p-ca -n "__fish_p2p_ca_using_subcommand sign" -l dir -d 'The CA\'s directory, holding ca.key' -r -F
complete -c p2p-ca -n "__fish_p2p_ca_using_subcommand sign" -l name -d 'The member name the certificate is for (p2pd --name)' -r
complete -c p2p-ca -n "__fish_p2p_ca_using_subcommand sign" -l group -d 'A group the member belongs to (repeatable)' -r
complete -c p2p-ca -n "__fish_p2p_ca_using_subcommand sign" -l valid -d 'How long the certificate is valid from now: a number with s, m, h or d' -r
complete -c p2p-ca -n "__fish_p2p_ca_using_subcommand sign" -s h -l help -d 'Print help'
complete -c p2p-ca -n "__fish_p2p_ca_using_subcommand revoke" -l dir -d 'The CA\'s directory, holding ca.key' -r -F
complete -c p2p-ca -n "__fish_p2p_ca_using_subcommand revoke" -l list -d 'A list printed before, whose serials stay revoked in the new one' -r -F
complete -c p2p-ca -n "__fish_p2p_ca_using_subcommand revoke" -s h -l help -d 'Print help'
complete -c p2p-ca -n "__fish_p2p_ca_using_subcommand help; and not __fish_seen_subcommand_from init sign revoke help" -f -a "init" -d 'Make a new CA key pair in DIR: ca.key (mode 0600) and ca.pub (for every member\'s --ca)'
complete -c p2p-ca -n "__fish_p2p_ca_using_subcommand help; and not __fish_seen_subcommand_from init sign revoke help" -f -a "sign" -d 'Sign a certificate for the node public key in NODE.pub and print it'
complete -c p2p-ca -n "__fish_p2p_ca_using_subcommand help; and not __fish_seen_subcommand_from init sign revoke help" -f -a "revoke" -d 'Print a signed revocation list of the SERIALs (hex, as sign prints them), for p2p-revoke'
complete -c p2p-ca -n "__fish_p2p_ca_using_subcommand help; and not __fish_seen_subcommand_from init sign revoke help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
