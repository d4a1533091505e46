"""The numeric core: configuration, parameter layout, the numpy reference, torch's runner, compare, recipes, results, bench, limits."""
