"""vLLM's own exception classes (vllm/exceptions.py, vLLM >= 0.3x): a request the engine refuses raises
VLLMValidationError, which is not a ValueError."""


class VLLMError(Exception):
    pass


class VLLMClientError(VLLMError):
    pass


class VLLMValidationError(VLLMClientError):
    def __init__(self, message, *, parameter=None, value=None):
        super().__init__(message)
        self.parameter, self.value = parameter, value
