"""Entry points, one module per Knative function (FUNCTION_TARGET = module name)."""
