export { buildApp, buildPassthroughApp, type AppOptions, type PassthroughAppOptions } from './app.js';
export { startServer, startPassthroughServer, type ServerOptions, type RunningServer, type PassthroughServer } from './server.js';
export { loadConfig, parseConfig, ConfigError, type Config, type ModelDeployment } from './config.js';
export { openStorage, type Storage, type StorageOptions } from './storage/index.js';
export { ApiError } from './errors.js';
export {
  createAssistants,
  getAssistants,
  deleteAssistant,
  createThread,
  getThread,
  addMessage,
  getMessages,
  runThread,
  runThreadStream,
  configureLocal,
  closeLocal,
  AssistantRunStream,
  AssistantsAPIError,
  type AssistantStreamEvent,
  type LiteLLMParams,
  type LocalOptions,
} from './litellm.js';
