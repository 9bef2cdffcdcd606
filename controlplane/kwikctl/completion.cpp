// kwikctl's completion scripts; see completion.hpp.
#include "controlplane/kwikctl/completion.hpp"

#include <CLI/CLI.hpp>

#include <functional>

namespace kwik::ctl {

namespace {

// One command of the tree: its path ("", "show", "show paths") and the words after it.
struct node {
    std::string path;
    std::string subcommands;   // names
    std::string options;       // every --long option (own and global)
    std::string value_options; // those that take a value
    std::string file_options;  // those whose value is a FILE
    std::string choices;       // fixed choices of its positionals
};

void append(std::string& list, const std::string& word) {
    if ((" " + list + " ").find(" " + word + " ") == std::string::npos) {
        list += (list.empty() ? "" : " ") + word;
    }
}

void add_options(const CLI::App& app, node& n) {
    for (const CLI::Option* o : app.get_options()) {
        for (const std::string& l : o->get_lnames()) {
            append(n.options, "--" + l);
            if (o->get_expected_max() > 0) {
                append(n.value_options, "--" + l);
            }
            if (o->get_type_name() == "FILE") {
                append(n.file_options, "--" + l);
            }
        }
    }
}

void walk(const CLI::App& app, const CLI::App& root, const std::string& path, const completion_tree_hints& hints,
          std::vector<node>& out) {
    node n;
    n.path = path;
    for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
        append(n.subcommands, sub->get_name());
    }
    add_options(app, n);
    if (&app != &root) {
        add_options(root, n);
    }
    for (const CLI::Option* o : app.get_options()) {
        if (auto it = hints.choices.find(o); it != hints.choices.end() && !o->nonpositional()) {
            for (const std::string& c : it->second) {
                append(n.choices, c);
            }
        }
    }
    out.push_back(n);
    for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
        walk(*sub, root, path.empty() ? sub->get_name() : path + " " + sub->get_name(), hints, out);
    }
}

// The shell function that sets the node's word lists; the same text works in bash and zsh.
std::string node_function(const std::vector<node>& nodes) {
    std::string s = "_kwikctl_node() {\n    case \"$1\" in\n";
    for (const node& n : nodes) {
        s += "        \"" + n.path + "\")\n";
        s += "            _kw_subs=\"" + n.subcommands + "\"\n";
        s += "            _kw_opts=\"" + n.options + "\"\n";
        s += "            _kw_vals=\"" + n.value_options + "\"\n";
        s += "            _kw_files=\"" + n.file_options + "\"\n";
        s += "            _kw_pos=\"" + n.choices + "\" ;;\n";
    }
    s += "    esac\n}\n";
    return s;
}

// Both drivers walk the words typed so far the same way: a word after an option that takes a
// value is that value; a word naming a subcommand of the node reached descends into it.
std::string walk_typed_words(std::string_view first, std::string_view last, std::string_view word) {
    std::string s = R"(    local node="" w i _kw_subs _kw_opts _kw_vals _kw_files _kw_pos
    _kwikctl_node ""
    for ((i = @FIRST@; i < @LAST@; i++)); do
        w="@WORD@"
        if [[ " $_kw_vals " == *" $w "* ]]; then
            ((i++))
        elif [[ " $_kw_subs " == *" $w "* ]]; then
            node="${node:+$node }$w"
            _kwikctl_node "$node"
        fi
    done
)";
    s.replace(s.find("@WORD@"), 6, word);
    s.replace(s.find("@FIRST@"), 7, first);
    s.replace(s.find("@LAST@"), 6, last);
    return s;
}

std::string bash_driver() {
    return "_kwikctl() {\n" + walk_typed_words("1", "COMP_CWORD", "${COMP_WORDS[i]}") +
           R"(    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
    if [[ " $_kw_vals " == *" $prev "* ]]; then
        if [[ " $_kw_files " == *" $prev "* ]]; then
            COMPREPLY=($(compgen -f -- "$cur"))
        else
            COMPREPLY=()
        fi
    elif [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$_kw_opts" -- "$cur"))
    else
        COMPREPLY=($(compgen -W "$_kw_subs $_kw_pos" -- "$cur"))
    fi
}
complete -F _kwikctl kwikctl
)";
}

std::string zsh_driver() {
    return "_kwikctl() {\n" + walk_typed_words("2", "CURRENT", "${words[i]}") +
           R"(    local prev="${words[CURRENT-1]}"
    if [[ " $_kw_vals " == *" $prev "* ]]; then
        if [[ " $_kw_files " == *" $prev "* ]]; then
            _files
        fi
    elif [[ "${words[CURRENT]}" == -* ]]; then
        compadd -- ${=_kw_opts}
    else
        compadd -- ${=_kw_subs} ${=_kw_pos}
    fi
}
if [[ "${funcstack[1]}" == "_kwikctl" ]]; then
    _kwikctl "$@"
else
    compdef _kwikctl kwikctl
fi
)";
}

} // namespace

std::string make_completion_script(const CLI::App& app, std::string_view shell, const completion_tree_hints& hints) {
    if (shell != "bash" && shell != "zsh") {
        return {};
    }
    std::vector<node> nodes;
    walk(app, app, "", hints, nodes);
    std::string s;
    if (shell == "zsh") {
        s += "#compdef kwikctl\n";
    }
    s += "# " + std::string(shell) +
         " completion for kwikctl, generated by `kwikctl completion " + std::string(shell) +
         "` from its command tree.\n";
    s += shell == "bash" ? "# Load it with: source <(kwikctl completion bash)\n"
                         : "# Load it with: source <(kwikctl completion zsh), or save it as _kwikctl in $fpath\n";
    s += node_function(nodes);
    s += shell == "bash" ? bash_driver() : zsh_driver();
    return s;
}

} // namespace kwik::ctl
