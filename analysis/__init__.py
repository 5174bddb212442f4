"""The paper's section V study: tables in, statistics, figures and report out."""
