"""Lineage of Seedance generations: OpenLineage facets and Airflow's hook-level lineage.

Nothing here is imported when a DAG file is parsed. :mod:`.naming` is pure Python;
:mod:`.openlineage` and :mod:`.facets` need the optional OpenLineage provider
(``pip install 'airflow-provider-seedance[openlineage]'``) and are imported only by the
``get_openlineage_facets_*`` methods, which the OpenLineage listener calls; :mod:`.hook_lineage`
reports to Airflow's hook lineage collector, which exists without that provider.
"""
