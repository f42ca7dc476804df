"""`sme watch`, split by concern; ``sme.vpcwatch`` ties the parts together (read its docstring first)."""
