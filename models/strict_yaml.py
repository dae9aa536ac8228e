"""People's YAML files (cycle definitions, groups) read strictly: a key given twice in one mapping is an error
(PyYAML silently keeps the last)."""

from functools import cache


@cache
def strict_loader(dates_as_text: bool = False) -> type:
    """A SafeLoader that refuses a duplicate key; `dates_as_text` leaves dates as strings for pydantic to read
    (PyYAML raises a bare ValueError for 2019-02-30). Made on first use: importing PyYAML costs ~8 ms of the
    start of every command, and most read no YAML."""
    import yaml

    class StrictLoader(yaml.SafeLoader):  # not CSafeLoader: libyaml crashes the process on deep nesting
        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                    key = self.construct_object(key_node)
                    if key in seen:
                        raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}",
                                                                key_node.start_mark)
                    seen.add(key)
            return super().construct_mapping(node, deep)

    if dates_as_text:
        StrictLoader.yaml_implicit_resolvers = {
            first: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:timestamp"]
            for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    return StrictLoader
