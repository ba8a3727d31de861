"""The stages: one module per stage, the stage table (stockpred.stages.table) over them.

Library packages (data, features, models, evaluation, plots) never import from here.
"""
