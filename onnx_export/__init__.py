"""onnx_export"""
