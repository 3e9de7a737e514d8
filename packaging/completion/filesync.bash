# bash completion for filesync(1): commands, their options, and the values of options that take
# one. tests/packaging checks that it offers every command and option `filesync --help` lists.

# Sets COMPREPLY to the lines compgen prints for its arguments.
_filesync_reply() {
    mapfile -t COMPREPLY < <(compgen "$@")
}

_filesync() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
    local commands="run sync plan status hash auth"
    local global_options="--config --env --config-dir --log-level --log-format --version --help"

    case $prev in
        --config | --out)
            _filesync_reply -f -- "$cur"
            return
            ;;
        --config-dir)
            _filesync_reply -d -- "$cur"
            return
            ;;
        --env)
            _filesync_reply -W "test dev prod" -- "$cur"
            return
            ;;
        --log-level)
            _filesync_reply -W "trace debug info warn error" -- "$cur"
            return
            ;;
        --log-format)
            _filesync_reply -W "text json" -- "$cur"
            return
            ;;
        --app-key | --api-url)
            COMPREPLY=()
            return
            ;;
    esac

    # The command is the first word that is neither an option nor the value of a global option.
    local i command=""
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
            --config | --env | --config-dir | --log-level | --log-format) ((i++)) ;;
            -*) ;;
            *)
                command=${COMP_WORDS[i]}
                break
                ;;
        esac
    done

    local options
    case $command in
        "")
            if [[ $cur == -* ]]; then
                _filesync_reply -W "$global_options" -- "$cur"
            else
                _filesync_reply -W "$commands" -- "$cur"
            fi
            return
            ;;
        run) options="--help" ;;
        sync) options="--verify --allow-mass-delete --help" ;;
        plan) options="--json --verify --allow-mass-delete --help" ;;
        status) options="--json --help" ;;
        auth) options="--app-key --api-url --out --help" ;;
        hash)
            if [[ $cur == -* ]]; then
                _filesync_reply -W "--help" -- "$cur"
            else
                _filesync_reply -f -- "$cur"
            fi
            return
            ;;
        *) return ;;
    esac
    _filesync_reply -W "$options" -- "$cur"
}

complete -o filenames -F _filesync filesync
